"""Sample project files shared by the tests of resolving and of commands."""

# The C project of the README: a pattern rule with a depfile, an explicit
# link rule, and an explicit rule that beats the pattern for one object.
C_PROJECT = """
[[rule]]
name = "compile"
inputs = ["src/%.c"]
outputs = ["build/%.o", "build/%.o.d"]
command = "cc -MD -MF {out[1]} -c {in} -o {out[0]}"
depfile = "build/%.o.d"
timeout = 600

[[rule]]
name = "link"
inputs = ["build/main.o", "build/util.o"]
outputs = ["bin/app"]
command = ["cc", "{in}", "-o", "{out}"]

[[rule]]
name = "special"
inputs = ["src/special.c", "src/special.h"]
outputs = ["build/special.o"]
command = "cc -O0 -c {in[0]} -o {out}"
"""
