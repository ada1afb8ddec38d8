# expect: failed row
# says: `sys._getframe` is not allowed
G = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0].__init__.__globals__


def transform(p):
    f = G["sys"]._getframe()
    while f.f_back is not None:
        f = f.f_back
    return {"id": ",".join(f.f_locals)}
