# expect: failed row
# says: `object.__getattr__` is not allowed
def gen():
    yield 1


def transform(p):
    g = gen()
    f = g.gi_frame
    return {"id": ",".join(f.f_back.f_locals)}
