# The Python transformation worker of Sluice (crates/transform/src/python/pool.rs starts it as
# `python3 -I -S -B -c <this file>` with an empty environment, confined by sandbox.rs: another user when
# Sluice is root, Landlock, seccomp and resource limits, all in place before this line runs).
#
# Protocol, one line per message, UTF-8:
#   parent -> worker  first line: {"source": str, "limit": seconds per profile, "output": longest row line}
#                     then batches: "n" or "c" (careful: flush after every profile) + the number of profiles,
#                     then one line of JSON per profile (read one at a time: a batch never has to fit in memory)
#   worker -> parent  "b" once the interpreter is ready to run the user's top-level code, then
#                     "k" when the script is loaded, or "e" + error object (the worker then exits);
#                     per profile, in order: "r" + JSON object (the row), "s" (None: skip) or "e" + error object.
#   error object: {"message": str, "column": str or null, "limit": "time" | "memory" | "output" | null}
#
# Everything lives inside functions: their locals (the real stdout, the hook) cannot be reached from the
# user's code, which has no frame access (the audit hook refuses sys._getframe and frame attributes, and
# the process's seccomp filter refuses signal handlers, which would be handed a frame). The hook trusts
# nothing wholesale at any moment (see `permit`).


def main():
    import sys

    if sys.version_info < (3, 8):
        # No audit hooks before 3.8: refuse to run rather than run unguarded.
        sys.stdout.write(
            'b\ne{"message": "Python transformations need Python 3.8 or later; `python3` is %d.%d", '
            '"column": null, "limit": null}\n' % sys.version_info[:2]
        )
        sys.stdout.flush()
        return

    # Everything a script may import is loaded now: afterwards imports of new modules are refused (by the
    # audit hook, and no file can be opened anyway).
    import base64, binascii, bisect, calendar, cmath, codecs, collections, copy, datetime, decimal
    import fractions, functools, hashlib, heapq, itertools, json, math, operator, random, re
    import statistics, string, textwrap, time, unicodedata, uuid
    import _strptime  # datetime.strptime imports it lazily
    import resource
    import types
    import _thread

    for name in ("latin-1", "ascii", "utf-16", "utf-32", "cp1252", "iso8859-15"):
        codecs.lookup(name)

    allowed_modules = frozenset(
        "base64 binascii bisect calendar cmath collections copy datetime decimal fractions functools "
        "hashlib heapq itertools json math operator random re statistics string textwrap time "
        "unicodedata uuid".split()
    )

    stdin = sys.stdin.buffer
    out = sys.stdout
    # The user's print() goes to stderr, never into the protocol.
    sys.stdout = sys.stderr
    # No new file descriptor from now on: no file, socket or pipe can be opened.
    resource.setrlimit(resource.RLIMIT_NOFILE, (3, 3))

    loads = json.loads
    dumps = json.dumps
    try:
        # The C scanner and encoder, made once: json.loads and json.dumps(default=...) cost several
        # microseconds per call in setup alone.
        from json.scanner import c_make_scanner
        from json.encoder import c_make_encoder, encode_basestring_ascii
    except ImportError:
        c_make_scanner = c_make_encoder = None
    monotonic = time.monotonic
    Datetime = datetime.datetime
    Date = datetime.date
    Time = datetime.time
    Decimal = decimal.Decimal
    UUID = uuid.UUID
    utc = datetime.timezone.utc
    INT_MIN = -(2**63)
    INT_MAX = 2**64 - 1
    TAG = "\0"

    def encode(o):
        # Types JSON lacks are tagged so that the parent converts them exactly (see pool.rs).
        if isinstance(o, Datetime):
            if o.tzinfo is not None:
                o = o.astimezone(utc).replace(tzinfo=None)
            return {TAG: "datetime", "v": o.isoformat() + "Z"}
        if isinstance(o, Date):
            return {TAG: "date", "v": o.isoformat()}
        if isinstance(o, Time):
            return {TAG: "time", "v": o.replace(tzinfo=None).isoformat()}
        if isinstance(o, Decimal):
            if not o.is_finite():
                raise ValueError("the Decimal %s is not a number that can be written" % o)
            return {TAG: "decimal", "v": format(o, "f")}
        if isinstance(o, UUID):
            return str(o)
        if isinstance(o, (set, frozenset)):
            return list(o)
        raise TypeError("a value of type %s cannot be written to a column" % type(o).__name__)

    if c_make_scanner is not None and c_make_encoder is not None:
        scan = c_make_scanner(json.JSONDecoder())
        c_encode = c_make_encoder(
            None, encode, encode_basestring_ascii, None, ":", ",", False, False, False
        )

        def parse(line):
            return scan(line.decode("utf-8"), 0)[0]

        def to_json(value):
            return "".join(c_encode(value, 0))

    else:

        def parse(line):
            return loads(line)

        def to_json(value):
            return dumps(value, default=encode, allow_nan=False, separators=(",", ":"))

    def check_ints(v, depth):
        # JSON has no limit on integers but columns do; nested values are checked too.
        if depth > 64:
            raise ValueError("the value is nested too deeply (does it contain a cycle?)")
        t = type(v)
        if t is int:
            if v < INT_MIN or v > INT_MAX:
                raise ValueError("the integer %d does not fit a 64-bit integer" % v)
        elif t is float:
            if v - v:
                raise ValueError("%r cannot be written (not a finite number)" % v)
        elif t is list or t is tuple:
            for x in v:
                check_ints(x, depth + 1)
        elif t is dict:
            for x in v.values():
                check_ints(x, depth + 1)

    def error(message, column=None, limit=None):
        # Cut: an exception's text or a key is the script's, and may be of any size.
        if len(message) > 2000:
            message = message[:2000] + "..."
        if column is not None and len(column) > 500:
            column = column[:500] + "..."
        return "e" + dumps({"message": message, "column": column, "limit": limit}) + "\n"

    Traceback = types.TracebackType
    get_ident = _thread.get_ident
    main_thread = get_ident()
    # The one object whose audited attributes (a traceback's frame, a frame's code) the worker may read,
    # set only while it walks a traceback, in its own thread. Nothing is ever trusted wholesale: a script
    # that ran at that moment (it cannot: no thread can start, no signal handler be set) could read only
    # that object's attributes, and nothing the hook refuses becomes possible.
    permit = [None]

    def location(e):
        # The line of the innermost frame of the user's script. The traceback is fetched first (an
        # exception class could make __traceback__ a property) and must be a real one, whose attributes
        # are all built in, so no code of the script's runs during the walk.
        line = None
        try:
            tb = e.__traceback__
        except BaseException:
            tb = None
        if type(tb) is not Traceback:
            tb = None
        try:
            while tb is not None:
                permit[0] = tb
                frame = tb.tb_frame
                permit[0] = frame
                code = frame.f_code
                permit[0] = None
                name = code.co_filename
                if type(name) is str and name == "transform.py":
                    line = tb.tb_lineno
                tb = tb.tb_next
        except BaseException:
            pass
        finally:
            permit[0] = None
        if line is None and isinstance(e, SyntaxError):
            line = e.lineno
        return line

    def describe(e):
        # Never raises: an exception class of the script's may misbehave in any of these steps.
        try:
            try:
                text = str(e)
            except BaseException:
                text = ""
            name = type(e).__name__
            message = "%s: %s" % (name, text) if text else str(name)
            line = location(e)
            if line is not None:
                message += " (line %d)" % line
            return message
        except BaseException:
            return "the script raised an exception that cannot be described"

    def row_line(result):
        if type(result) is not dict:
            if result is None:
                return "s\n"
            if isinstance(result, dict):
                return row_line(dict(result))
            return error(
                "transform() returned %s; return a dict of column values, or None to skip the profile"
                % ("a value of type " + type(result).__name__)
            )
        for k, v in result.items():
            if type(k) is not str:
                return error("transform() returned a dict with the key %r; keys must be column names" % (k,))
            t = type(v)
            if t is str or t is bool or v is None:
                continue
            try:
                check_ints(v, 0)
            except (ValueError, RecursionError) as e:
                return error(str(e), k)
        try:
            return "r" + to_json(result) + "\n"
        except BaseException as e:
            # Find the column at fault.
            for k, v in result.items():
                try:
                    to_json(v)
                except BaseException as e2:
                    return error(str(e2), k)
            return error(describe(e))

    real_import = __import__

    # Imported on demand by C code running for the script (datetime.strptime), through its __import__.
    internal_modules = frozenset(("_strptime",))

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and (name.partition(".")[0] in allowed_modules or name in internal_modules):
            return real_import(name, globals, locals, fromlist, level)
        raise ImportError(
            "module `%s` is not available to transformations; these are: %s"
            % (name, ", ".join(sorted(allowed_modules)))
        )

    import builtins

    safe = dict(builtins.__dict__)
    for name in ("open", "eval", "exec", "compile", "input", "breakpoint", "help", "exit", "quit",
                 "copyright", "credits", "license", "__loader__", "__spec__"):
        safe.pop(name, None)
    safe["__import__"] = guarded_import

    init = loads(stdin.readline())
    limit = float(init["limit"])
    output = int(init["output"])
    try:
        code = compile(init["source"], "transform.py", "exec", dont_inherit=True)
    except BaseException as e:
        out.write("b\n" + error(describe(e)))
        out.flush()
        return

    install_hook(sys, code, permit, get_ident, main_thread)

    namespace = {"__builtins__": safe, "__name__": "transform"}
    out.write("b\n")
    out.flush()
    try:
        exec(code, namespace)
        transform = namespace.get("transform")
        if not callable(transform):
            raise TypeError("the script must define a function `transform(profile)`")
    except BaseException as e:
        out.write(error(describe(e)))
        out.flush()
        return
    out.write("k\n")
    out.flush()

    readline = stdin.readline
    write = out.write
    flush = out.flush
    while True:
        header = readline()
        if not header:
            return
        careful = header[0] == 99  # "c"
        flushed = monotonic()
        for _ in range(int(header[1:])):
            line = readline()
            start = monotonic()
            try:
                text = row_line(transform(parse(line)))
            except MemoryError:
                text = error("MemoryError", limit="memory")
            except RecursionError as e:
                text = error(describe(e))
            except BaseException as e:
                text = error(describe(e))
            end = monotonic()
            if end - start > limit:
                text = error("over the time limit", limit="time")
            elif len(text) > output:
                # The parent reads lines up to a bound too; this makes an oversized row an error of its
                # own without restarting the worker.
                text = error("over the output limit", limit="output")
            write(text)
            if careful or end - flushed > 0.005:
                flush()
                flushed = end
        flush()


def install_hook(sys, code, permit, get_ident, main_thread):
    # Made here, not in main(), so that no frame of the worker holds the hook or its state.
    allowed_events = frozenset(("time.sleep",))

    def hook(event, args):
        if event in allowed_events:
            return
        if event == "exec" and args and args[0] is code:
            return
        if (
            event == "object.__getattr__"
            and permit[0] is not None
            and args[0] is permit[0]
            and get_ident() == main_thread
        ):
            return
        raise RuntimeError("`%s` is not allowed in a transformation" % event)

    sys.addaudithook(hook)


main()
