"""``/schema``: the REST API reference as one server-rendered HTML page.

litestar's schema UIs (ReDoc, Swagger, Scalar, …) load their scripts and fonts from a CDN, so on a machine without
internet ``/schema`` was a blank page. This page is built here from the same OpenAPI document
(``/schema/openapi.json``) with no script, font or request to anywhere, so it reads the same offline. Every
value from the document is HTML-escaped.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from litestar import Request
from litestar.openapi.plugins import OpenAPIRenderPlugin

METHODS = ("get", "post", "put", "patch", "delete", "options", "head")
REF_PREFIX = "#/components/schemas/"
CONSTRAINTS = ("minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems", "pattern", "format")

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 60rem; padding: 1rem 1.5rem 4rem;
  color: #1d1f23; background: #fff; }
@media (prefers-color-scheme: dark) {
  body { color: #e6e6e6; background: #16181c; } th, td { border-color: #444 !important; } }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #8884; }
h3 { margin: 2rem 0 0.3rem; font-size: 1.05rem; }
code, .path { font-family: ui-monospace, monospace; font-size: 0.92em; }
.method { display: inline-block; min-width: 4.2rem; font-weight: 700; text-transform: uppercase; }
.get { color: #1d7a3a; } .post { color: #1c5fb8; } .delete { color: #b3261e; } .put, .patch { color: #8a5a00; }
table { border-collapse: collapse; margin: 0.4rem 0 0.8rem; width: 100%; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { font-weight: 600; } .muted { opacity: 0.7; } nav ul { columns: 2; padding-left: 1.2rem; }
"""


class SchemaPage(OpenAPIRenderPlugin):
    """Serves the reference at ``/schema`` (and ``/schema/reference``)."""

    def __init__(self) -> None:
        super().__init__(path=["/", "/reference"])

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return render_reference(openapi_schema, self.get_openapi_json_route(request)).encode()


def type_of(schema: dict[str, Any] | None) -> str:
    """A short HTML description of a JSON schema: a link for a named type, constraints in brackets."""
    if not schema:
        return "any"
    if "$ref" in schema:
        name = str(schema["$ref"]).removeprefix(REF_PREFIX)
        return f'<a href="#schema-{escape(name)}">{escape(name)}</a>'
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(type_of(s) for s in schema[key])
    if "enum" in schema:
        return "one of " + ", ".join(f"<code>{escape(json.dumps(v))}</code>" for v in schema["enum"])
    if "const" in schema:
        return f"<code>{escape(json.dumps(schema['const']))}</code>"
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        text = " | ".join(escape(str(k)) for k in kind)
    elif kind == "array":
        text = f"array of {type_of(schema.get('items'))}"
    else:
        text = escape(str(kind))
    limits = [f"{c}: {escape(json.dumps(schema[c]))}" for c in CONSTRAINTS if c in schema]
    return text + (f' <span class="muted">({"; ".join(limits)})</span>' if limits else "")


def _body_schema(content: dict[str, Any] | None) -> str:
    if not content:
        return ""
    return "; ".join(f"<code>{escape(mt)}</code>: {type_of(c.get('schema'))}" for mt, c in content.items())


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    anchor = f"op-{method}-{path}"
    out = [
        f'<h3 id="{escape(anchor)}"><span class="method {method}">{method}</span> '
        f'<span class="path">{escape(path)}</span></h3>',
        f"<p>{escape(op.get('summary') or op.get('description') or '')}</p>",
    ]
    if op.get("security"):
        out.append('<p class="muted">Needs credentials (a bearer token, or <code>?user=</code> in open mode).</p>')
    params = op.get("parameters") or []
    if params:
        out.append("<table><tr><th>parameter</th><th>in</th><th>type</th><th>description</th></tr>")
        for p in params:
            required = " (required)" if p.get("required") else ""
            out.append(
                f"<tr><td><code>{escape(p.get('name', ''))}</code>{required}</td><td>{escape(p.get('in', ''))}</td>"
                f"<td>{type_of(p.get('schema'))}</td><td>{escape(p.get('description') or '')}</td></tr>"
            )
        out.append("</table>")
    body = op.get("requestBody")
    if body:
        out.append(f"<p>Request body: {_body_schema(body.get('content'))}</p>")
    responses = op.get("responses") or {}
    if responses:
        out.append("<table><tr><th>status</th><th>meaning</th><th>body</th></tr>")
        for status, r in responses.items():
            out.append(
                f"<tr><td>{escape(str(status))}</td><td>{escape(r.get('description') or '')}</td>"
                f"<td>{_body_schema(r.get('content'))}</td></tr>"
            )
        out.append("</table>")
    return "\n".join(out)


def _component(name: str, schema: dict[str, Any]) -> str:
    out = [f'<h3 id="schema-{escape(name)}">{escape(name)}</h3>']
    if schema.get("description"):
        out.append(f"<p>{escape(schema['description'])}</p>")
    props = schema.get("properties") or {}
    if not props:
        out.append(f"<p>{type_of({k: v for k, v in schema.items() if k != 'title'})}</p>")
        return "\n".join(out)
    required = set(schema.get("required") or [])
    out.append("<table><tr><th>field</th><th>type</th><th>description</th></tr>")
    for field, s in props.items():
        mark = " (required)" if field in required else ""
        out.append(
            f"<tr><td><code>{escape(field)}</code>{mark}</td><td>{type_of(s)}</td>"
            f"<td>{escape(s.get('description') or '')}</td></tr>"
        )
    out.append("</table>")
    return "\n".join(out)


def render_reference(doc: dict[str, Any], json_url: str) -> str:
    info = doc.get("info") or {}
    title = escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
    operations = [
        (path, method, op)
        for path, item in sorted((doc.get("paths") or {}).items())
        for method in METHODS
        if isinstance(op := (item or {}).get(method), dict)
    ]
    toc = "\n".join(
        f'<li><a href="#{escape(f"op-{m}-{p}")}"><span class="method {m}">{m}</span> '
        f'<span class="path">{escape(p)}</span></a></li>'
        for p, m, _ in operations
    )
    schemas = (doc.get("components") or {}).get("schemas") or {}
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{title} API reference</title><style>{STYLE}</style></head><body>",
            f"<h1>{title}</h1>",
            f"<p>{escape(info.get('description') or '')}</p>",
            f'<p>The machine-readable document: <a href="{escape(json_url)}">{escape(json_url)}</a>. '
            "Errors are <code>{code, message, ref}</code> with a code from the table in docs/protocol.md.</p>",
            f'<h2 id="operations">Operations</h2><nav><ul>{toc}</ul></nav>',
            *(_operation(p, m, op) for p, m, op in operations),
            '<h2 id="schemas">Types</h2>',
            *(_component(name, s) for name, s in sorted(schemas.items())),
            "</body></html>",
        ]
    )
