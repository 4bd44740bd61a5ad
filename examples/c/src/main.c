#include <stdio.h>

#include "util.h"

int main(int argc, char **argv)
{
    char buf[80];

    puts(greeting(buf, sizeof buf, argc > 1 ? argv[1] : "world"));
    return 0;
}
