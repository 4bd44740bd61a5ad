#ifndef UTIL_H
#define UTIL_H

/* The greeting for name, in buf (of size size); returns buf. */
char *greeting(char *buf, unsigned long size, const char *name);

#endif
