#include <stdio.h>

#include "words.h"

int main(void)
{
    char buf[4096];
    struct counts c = {0, 0, 0};
    int in_word = 0;
    size_t n;

    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0)
        count_chunk(&c, buf, n, &in_word);
    printf("%zu %zu %zu\n", c.lines, c.words, c.bytes);
    return 0;
}
