"""Read a pickle's opcodes before any of them runs, and refuse the dangerous shapes.

The allow-listed unpickler (torch_zip.py) decides *which objects* a pickle
may build. This scan decides *how* it may build them, from the opcodes
alone (``pickletools.genops`` decodes them without executing anything):

- no EXT1/EXT2/EXT4: they name a global by a number in ``copyreg``'s
  extension registry, and the C unpickler resolves a number it has seen
  before from a cache without asking ``find_class``;
- memo indices are dense (each PUT names the next free slot or an existing
  one): ``LONG_BINPUT 1_000_000_000`` alone makes the C unpickler allocate
  a gigabyte for its memo table;
- nesting is at most MAX_DEPTH deep and the stack at most MAX_STACK items:
  the unpickler itself is a loop, but hashing, comparing or printing a
  tuple nested a million deep recurses in C and kills the interpreter;
- a container is complete before it is put inside another (pickle's own
  writer always works that way). Without this rule a pickle could fill a
  list *after* nesting it, and the depth counted here would be out of date;
- at most MAX_ODD_KEYS dict keys or set items that are not strings: strings
  hash with a per-process random key, but ints, floats and tuples hash
  predictably, and 20,000 int keys with one hash take a dict ~20 s to fill.

The scan simulates the unpickler's stack with one small record per
container (its depth, and whether it is inside another); plain values share
a single record (TEXT for strings and bytes, PLAIN for the rest).
"""
from __future__ import annotations

import pickletools

from .errors import WeightFileError
from .limits import MAX_ARRAYS

MAX_DEPTH = 64          # a state dict is ~5 deep; a training checkpoint ~10
MAX_STACK = 100_000     # pickle's writer batches 1000 items per APPENDS/SETITEMS
MAX_ODD_KEYS = MAX_ARRAYS   # a checkpoint's optimizer state has one int key per tensor
REFUSED = {"EXT1", "EXT2", "EXT4"}
MEMO_PUTS = {"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"}
MEMO_GETS = {"GET", "BINGET", "LONG_BINGET"}
# Opcodes that change the object below their arguments in place.
MUTATORS = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"}
# Opcodes that push a new object that can later be changed in place.
FRESH = {"EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "GLOBAL"}
TEXT_OPCODES = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE",
                "BINUNICODE", "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8"}
# Opcodes that hash items into a dict or set -> which of the popped items they hash.
HASHED = {"SETITEM": slice(1, None, 2), "SETITEMS": slice(1, None, 2),
          "DICT": slice(0, None, 2), "ADDITEMS": slice(1, None), "FROZENSET": slice(None)}


class Node:
    """What the scan knows of one object on the unpickler's stack."""

    __slots__ = ("depth", "inside")

    def __init__(self):
        self.depth, self.inside = 0, False


PLAIN = Node()          # every int, float, None ...: holds nothing, never changes
TEXT = Node()           # every str and bytes


def _pop(opcode, stack: list, marks: list) -> list:
    """Pop the items `opcode` takes off the stack, oldest first."""
    before = opcode.stack_before
    if pickletools.markobject in before:
        if not marks:
            raise WeightFileError(f"{opcode.name} without a MARK")
        top = marks.pop()
        below = before.index(pickletools.markobject)
        start = top - below
    else:
        start = len(stack) - len(before)
    if start < 0:
        raise WeightFileError(f"{opcode.name} with too few items on the stack")
    popped = stack[start:]
    del stack[start:]
    return popped


def _hold(container: Node, items: list) -> None:
    """`container` now holds `items`: it is at least one deeper than each."""
    for item in items:
        if item not in (PLAIN, TEXT):
            item.inside = True
        if item.depth + 1 > container.depth:
            container.depth = item.depth + 1
    if container.depth > MAX_DEPTH:
        raise WeightFileError(f"objects nested more than {MAX_DEPTH} deep")


class Scan:
    """The unpickler's stack, marks and memo, as Nodes; `step` checks one opcode."""

    def __init__(self):
        self.stack, self.marks, self.memo, self.odd_keys = [], [], [], 0

    def step(self, opcode, arg) -> None:
        name, stack, memo = opcode.name, self.stack, self.memo
        if name in REFUSED:
            raise WeightFileError(f"{name} opcode (a copyreg extension code, which would "
                                  f"bypass the allow-list)")
        if name == "MARK":
            if len(self.marks) >= MAX_DEPTH:
                raise WeightFileError(f"MARKs nested more than {MAX_DEPTH} deep")
            self.marks.append(len(stack))
        elif name in MEMO_PUTS:
            index = len(memo) if name == "MEMOIZE" else arg
            if not stack or index > len(memo):
                raise WeightFileError(f"{name} {index} with {len(memo)} memo entries; "
                                      f"memo slots must be filled in order")
            memo[index:index + 1] = [stack[-1]]
        elif name in MEMO_GETS:
            if arg >= len(memo):
                raise WeightFileError(f"{name} {arg}: no such memo entry")
            stack.append(memo[arg])
        elif name == "DUP":
            if not stack:
                raise WeightFileError("DUP on an empty stack")
            stack.append(stack[-1])
        else:
            self._apply(opcode, _pop(opcode, stack, self.marks))
        if len(stack) > MAX_STACK:
            raise WeightFileError(f"more than {MAX_STACK:,} items on the unpickler's stack")

    def _apply(self, opcode, popped: list) -> None:
        """Push what an opcode makes of the items it popped."""
        name = opcode.name
        if name in HASHED:
            self.odd_keys += sum(key is not TEXT for key in popped[HASHED[name]])
            if self.odd_keys > MAX_ODD_KEYS:
                raise WeightFileError(f"more than {MAX_ODD_KEYS:,} dict keys or set items "
                                      f"that are not strings")
        if name in MUTATORS:
            target = popped[0]
            if target in (PLAIN, TEXT) or target.inside:
                raise WeightFileError(f"{name} changes an object that is a plain value "
                                      f"or already inside another")
            _hold(target, popped[1:])
            self.stack.append(target)
        elif name in TEXT_OPCODES:
            self.stack.append(TEXT)
        elif opcode.stack_after:
            made = PLAIN if not popped and name not in FRESH else Node()
            if made is not PLAIN:
                _hold(made, popped)
            self.stack.append(made)


def scan_pickle(data) -> None:
    """Raise WeightFileError (without the file name) if `data` is a pickle
    numalex will not run; return None if the unpickler may go ahead."""
    scan = Scan()
    try:
        for opcode, arg, pos in pickletools.genops(data):
            try:
                scan.step(opcode, arg)
            except WeightFileError as err:
                raise WeightFileError(f"data.pkl byte {pos}: {err}") from None
    except WeightFileError:
        raise
    except Exception as err:                # genops: unknown opcode, truncated argument ...
        raise WeightFileError(f"data.pkl is not a valid pickle ({err})") from None
