# expect: failed row
# says: `object.__getattr__` is not allowed
def transform(p):
    try:
        1 / 0
    except ZeroDivisionError as e:
        f = e.__traceback__.tb_frame
    while f.f_back is not None:
        f = f.f_back
    return {"id": ",".join(f.f_locals)}
