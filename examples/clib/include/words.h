#ifndef WORDS_H
#define WORDS_H

#include <stddef.h>

struct counts { size_t lines, words, bytes; };

/* Add the text buf[0..n) to c; in_word carries a word across calls. */
void count_chunk(struct counts *c, const char *buf, size_t n, int *in_word);

/* Whether ch separates words. */
int is_separator(int ch);

#endif
