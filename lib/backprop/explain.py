"""One line instead of a traceback when a learner's code raises in a demonstration cell."""


def what_raised(exc, *yours):
    """A sentence naming which of ``yours`` (the learner's functions and classes) raised ``exc``.

    The innermost frame of the traceback that belongs to one of them (a function, or a method
    of a class) names the culprit. When none does, the cell itself raised on something one of
    them returned: the sentence names them all (or the one, if only one is given). A
    ``NotImplementedError`` (the stub of an answer cell) is named as work still to do.
    """
    code_names = {}
    for obj in yours:
        parts = vars(obj).items() if isinstance(obj, type) else [(None, obj)]
        for method, fn in parts:
            if hasattr(fn, "__code__"):
                code_names[fn.__code__] = f"{obj.__name__}.{method}" if method else obj.__name__
    culprit = None
    tb = exc.__traceback__
    while tb is not None:
        culprit = code_names.get(tb.tb_frame.f_code, culprit)
        tb = tb.tb_next
    message = " ".join(str(exc).split())
    if culprit is None and len(yours) > 1:
        # None of theirs raised: the cell itself failed on what one of them returned (None, a
        # tuple of the wrong length, ...), and blaming the first would accuse a right answer.
        names = [obj.__name__ for obj in yours]
        either = ", ".join(names[:-1]) + " or " + names[-1]
        return (
            f"This cell stopped with {type(exc).__name__}: {message}, on something your {either} "
            "returned; their test cells above say which one is wrong. Fix it, then run this cell "
            "again."
        )
    if culprit is None:
        culprit = yours[0].__name__ if yours else "code"
    if isinstance(exc, NotImplementedError):  # an answer cell not filled in yet
        return f"Your {culprit} is not implemented yet: fill it in above, then run this cell again."
    return (
        f"Your {culprit} raised {type(exc).__name__}: {message}; "
        "fix it with the test cell above, then run this cell again."
    )
