# expect: failed row
# says: `os.fork` is not allowed
posix = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0].__init__.__globals__["sys"].modules["posix"]


def transform(p):
    pid = posix.fork()
    if pid == 0:
        posix.execv("/bin/sh", ["sh", "-c", "cat {{DATA_DIR}}/secret.key > {{MARKER}}"])
    return {"id": str(pid)}
