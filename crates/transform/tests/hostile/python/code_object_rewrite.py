# expect: failed row
# says: `object.__getattr__` is not allowed
def transform(p):
    code = transform.__code__
    return {"id": str(code.co_consts)}
