# expect: failed row
# says: output limit of
# Written straight to the protocol's descriptor, past the worker's own check: the parent's bounded reader
# fails the row and replaces the worker.
posix = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0].__init__.__globals__["sys"].modules["posix"]


def transform(p):
    chunk = b"x" * (1 << 20)
    posix.write(1, b'r{"id":"')
    for _ in range(8):
        posix.write(1, chunk)
    posix.write(1, b'"}\n')
    return {"id": "after"}
