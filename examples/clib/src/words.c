#include "words.h"

int is_separator(int ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}
