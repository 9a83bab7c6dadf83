"""Every class, function, method and property of the extension module documents itself beyond
the signature pybind11 generates, so help(pagedkv.X) tells a user what X takes and does."""

import inspect
import re

import pagedkv
import pagedkv._pagedkv as ext

DUNDER_OK = {"__init__", "__repr__", "__len__", "__getitem__", "__iter__", "__eq__", "__ne__",
             "__contains__", "__hash__", "__getstate__", "__setstate__", "__int__", "__index__",
             "__str__", "__add__", "__radd__", "__buffer__", "__release_buffer__"}


def documented(doc: str | None, generated_signature: bool) -> bool:
    """pybind11 writes a function's __doc__ as its generated signature, a blank line, then the
    text given in C++ (overloads: "Overloaded function.", then "N. signature" and that
    overload's text). Documented = some paragraph besides the generated ones."""
    if not doc:
        return False
    paragraphs = [p.strip() for p in doc.split("\n\n") if p.strip()]
    if paragraphs and paragraphs[0] == "Overloaded function.":
        paragraphs = [p for p in paragraphs[1:] if not re.match(r"^\d+\. ", p)]
    elif generated_signature:
        paragraphs = paragraphs[1:]
    return bool(paragraphs)


def members():
    for name, obj in vars(ext).items():
        if name.startswith("_"):
            continue
        if inspect.isclass(obj):
            yield name, obj
            if issubclass(obj, BaseException):
                continue
            for attr, value in vars(obj).items():
                if attr.startswith("__") and attr in DUNDER_OK or attr.startswith("_pybind11"):
                    continue
                if attr.startswith("__") and attr.endswith("__") and attr != "__init__":
                    continue
                if isinstance(value, property):
                    yield f"{name}.{attr}", value
                elif callable(value) and not inspect.isclass(value):
                    if attr == "__init__" or not attr.startswith("_"):
                        yield f"{name}.{attr}", value
        elif callable(obj):
            yield name, obj


def test_every_public_binding_has_a_docstring():
    missing = []
    for name, obj in members():
        doc = obj.__doc__
        if isinstance(obj, property) and obj.fget is not None and not doc:
            doc = obj.fget.__doc__
        if not documented(doc, generated_signature=not (inspect.isclass(obj) or
                                                         isinstance(obj, property))):
            missing.append(name)
    assert not missing, f"{len(missing)} bindings without a docstring: {sorted(missing)}"
