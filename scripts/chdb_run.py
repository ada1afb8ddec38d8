"""Runs SQL statements in chDB (ClickHouse in-process) and answers their results as JSON.

The ClickHouse tests use it to run the statements Sluice's dialect writes on a current engine, which the
test machines cannot run as a server. It knows nothing of Sluice's SQL: it runs each statement as given,
in one session (temporary tables live across statements), with two exceptions that stand for the native
protocol, which chDB does not speak:

- a step with a "block" (a file in ClickHouse's Native format, as Sluice's encoder laid it out) is an
  insert whose data a server would read after the statement: `INSERT … VALUES` reads the file with
  `FROM INFILE`, and `input('structure')` in `INSERT … SELECT … FROM input(…) FORMAT Native` becomes
  `file('<block>', 'Native', 'structure')`;
- a step's "settings" (name and integer pairs), which the protocol sends beside the statement, become its
  `SETTINGS` clause.

It answers a line {"engine": "<chDB version>"} first, then reads one step a line on stdin,
{"sql": "...", "block": "/path" (optional), "settings": [["name", 0], ...] (optional)}, and answers one line
each, {"ok": true, "columns": [[name, type], ...], "rows": [[...], ...]} or {"ok": false, "code":
<exception code or null>, "error": "..."}, until stdin ends. A failed step does not stop the others, so
that a test can ask, read the answer, and ask on.
"""

import json
import re
import sys
import tempfile

import chdb
from chdb import session as chdb_session


def quote(text):
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def settings_clause(settings):
    if not settings:
        return ""
    return " SETTINGS " + ", ".join(f"{name} = {int(value)}" for name, value in settings)


def with_block(sql, block, settings):
    """The statement that reads the block from its file, as the server reads it from the connection."""
    tail = settings_clause(settings)
    if re.search(r"\sVALUES\s*$", sql):
        head = re.sub(r"\sVALUES\s*$", "", sql)
        return f"{head} FROM INFILE {quote(block)}{tail} FORMAT Native"
    match = re.search(r"\binput\(", sql)
    if match and re.search(r"\sFORMAT\s+Native\s*$", sql):
        body = re.sub(r"\sFORMAT\s+Native\s*$", "", sql)
        body = body[: match.start()] + f"file({quote(block)}, 'Native', " + body[match.end():]
        return body + tail
    raise ValueError("a step with a block must be INSERT … VALUES or read input(…) FORMAT Native: " + sql)


def last_document(text):
    """The last JSON document of `text`. chDB's session keeps what a query that failed while writing its
    result had written, and puts it in front of the next query's answer."""
    decoder = json.JSONDecoder()
    at, parsed = 0, None
    while at < len(text):
        parsed, end = decoder.raw_decode(text, at)
        at = end
        while at < len(text) and text[at].isspace():
            at += 1
    if parsed is None:
        raise ValueError("no JSON document")
    return parsed


def run(sess, step):
    sql = step["sql"]
    settings = step.get("settings") or []
    if step.get("block"):
        sql = with_block(sql, step["block"], settings)
    elif settings:
        sql = sql + settings_clause(settings)
    try:
        result = sess.query(sql, "JSONCompact")
    except Exception as e:  # chDB raises its own exception types, all with the server's message
        text = str(e)
        code = re.search(r"Code: (\d+)", text)
        return {"ok": False, "code": int(code.group(1)) if code else None, "error": text, "sql": sql}
    text = str(result).strip()
    if not text:
        return {"ok": True, "columns": [], "rows": []}
    try:
        parsed = last_document(text)
    except ValueError:
        # An exception thrown while the result was being written ends up in the text.
        code = re.search(r"Code: (\d+)", text)
        return {"ok": False, "code": int(code.group(1)) if code else None, "error": text, "sql": sql}
    return {
        "ok": True,
        "columns": [[m["name"], m["type"]] for m in parsed.get("meta", [])],
        "rows": parsed.get("data", []),
    }


def main():
    with tempfile.TemporaryDirectory(prefix="sluice-chdb-") as path:
        sess = chdb_session.Session(path)
        try:
            print(json.dumps({"engine": chdb.__version__}), flush=True)
            for line in sys.stdin:
                if line.strip():
                    print(json.dumps(run(sess, json.loads(line))), flush=True)
        finally:
            sess.close()


if __name__ == "__main__":
    main()
