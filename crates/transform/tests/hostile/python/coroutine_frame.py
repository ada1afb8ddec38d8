# expect: failed row
# says: `object.__getattr__` is not allowed
async def co():
    return 1


def transform(p):
    c = co()
    try:
        return {"id": str(c.cr_frame.f_back)}
    finally:
        c.close()
