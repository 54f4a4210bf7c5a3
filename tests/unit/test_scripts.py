"""Script assembly: the preludes keep only the local functions a script calls."""

import re

from empathy_os.scripts import SCRIPT_NAMES, _used_functions, source

PRELUDE = """local X = 1
local function one(n) return n end
local function two(n)
    return one(n) + 1
end
local function three()
    return 3
end
"""


def functions(text):
    return re.findall(r"^local function (\w+)", text, re.M)


def test_it_keeps_the_functions_called_directly_or_through_others():
    assert functions(_used_functions(PRELUDE, "return two(1)")) == ["one", "two"]
    assert functions(_used_functions(PRELUDE, "return three() + one(2)")) == ["one", "three"]
    assert functions(_used_functions(PRELUDE, "return X")) == []
    assert "local X = 1" in _used_functions(PRELUDE, "return X")


def test_every_script_defines_every_prelude_function_it_calls():
    defined_anywhere = set(functions(source("task_claim")) + functions(source("pattern_decide")))
    for name in SCRIPT_NAMES:
        text = re.sub(r"--[^\n]*", "", source(name))  # calls, not comments
        own = set(functions(text))
        called = {f for f in defined_anywhere if re.search(rf"\b{f}\(", text)}
        assert called <= own, (name, called - own)


def test_the_task_add_script_does_without_the_reaper_and_the_fencing():
    assert set(functions(source("task_add"))) == {"fmt", "trim_older", "emit", "task_key", "log_entry", "enqueue"}
