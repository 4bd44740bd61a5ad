#include "words.h"

void count_chunk(struct counts *c, const char *buf, size_t n, int *in_word)
{
    for (size_t i = 0; i < n; i++) {
        c->bytes++;
        if (buf[i] == '\n')
            c->lines++;
        if (is_separator((unsigned char)buf[i]))
            *in_word = 0;
        else if (!*in_word) {
            *in_word = 1;
            c->words++;
        }
    }
}
