#include <stdio.h>

#include "util.h"

char *greeting(char *buf, unsigned long size, const char *name)
{
    snprintf(buf, size, "Hello, %s!", name);
    return buf;
}
