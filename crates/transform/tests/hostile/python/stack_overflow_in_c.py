# expect: failed row
# says: the Python worker stopped | RecursionError | time limit of
sys = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0].__init__.__globals__["sys"]


def transform(p):
    sys.setrecursionlimit(10 ** 7)
    a = []
    for _ in range(10 ** 6):
        a = [a]
    return {"id": repr(a)}
