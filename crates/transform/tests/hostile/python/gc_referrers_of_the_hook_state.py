# expect: failed row
# says: not allowed
G = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0].__init__.__globals__


def transform(p):
    gc = G["sys"].modules["_frozen_importlib"]._gcd_import("gc")
    for o in gc.get_referrers(G["sys"].addaudithook):
        pass
    return {"id": "walked"}
