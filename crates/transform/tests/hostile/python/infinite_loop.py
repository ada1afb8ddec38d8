# expect: failed row
# says: time limit of
def transform(p):
    while True:
        try:
            pass
        except BaseException:
            pass
