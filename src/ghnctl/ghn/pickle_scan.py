"""A static check of a pickle's opcodes before the C unpickler runs on it.

The restricted unpickler decides *which* callables a pickle may reach; this pass bounds *how* it
may use them, by walking the opcode stream once, without building any object:

* nesting depth: every value gets the depth of what it contains (a stack of depths is kept as the
  opcodes would push and pop values); beyond ``MAX_DEPTH`` the file is refused. CPython hashes and
  frees nested tuples recursively in C, so a 200 KB file nesting a tuple 200,000 deep used as a
  dict key kills the interpreter (SIGSEGV) in the middle of ``pickle.load``;
* sizes: a bytes/str argument may not claim more bytes than the stream has left, and a memo index
  may not run far ahead of the memo entries written so far (the C unpickler grows its memo table
  to the index, so ``LONG_BINPUT 4e9`` alone would allocate 32 GB);
* state: ``BUILD`` (which sets attributes, or calls ``__setstate__``) is allowed only on instances
  of the classes listed in ``buildable``; never on a global itself (a stand-in shared by every
  load) or on anything else, so a file cannot change state that outlives its own load.

Anything unexpected is a ``CheckpointError`` (one line). The stream is left where it started.
"""

from __future__ import annotations

import io
import pickletools
import struct
from collections.abc import Collection
from typing import BinaryIO

from ..errors import CheckpointError, UnsafeCheckpoint, excerpt

MAX_DEPTH = 100  # GHN checkpoints nest about 6 deep (dict -> tuple -> storage record ...)
MEMO_SLACK = 1024  # memo indices are written in order; allow gaps, not a leap to 2**32
_OPCODES = {op.code.encode("latin-1"): op for op in pickletools.opcodes}
_MARK = -1  # a mark on the depth stack (real depths are >= 0)
_MUTATORS = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"}  # modify the value below
_CALLS = {"REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ", "INST"}


class _Value:
    """What the scan knows of a stack value: its nesting depth; for globals and instances of them,
    the global's name; for short strings, their text (``STACK_GLOBAL`` takes its name from two)."""

    __slots__ = ("depth", "global_name", "instance_of", "text")

    def __init__(self, depth: int, global_name: str | None = None, instance_of: str | None = None,
                 text: str | None = None) -> None:
        self.depth = depth
        self.global_name = global_name
        self.instance_of = instance_of
        self.text = text


def scan_pickle(stream: BinaryIO, *, buildable: Collection[str] = ()) -> None:
    """Check the pickle at the stream's position (see the module docstring); rewinds the stream.

    ``buildable`` names the globals (``module.name``) whose instances may receive ``BUILD``.
    """
    start = stream.tell()
    end = stream.seek(0, io.SEEK_END)
    stream.seek(start)
    try:
        _Scan(stream, end, set(buildable)).run()
    finally:
        stream.seek(start)


class _Scan:
    def __init__(self, stream: BinaryIO, end: int, buildable: set[str]) -> None:
        self.stream = stream
        self.end = end
        self.buildable = buildable
        self.stack: list[_Value | int] = []
        self.memo: dict[int, _Value] = {}

    def run(self) -> None:
        while True:
            code = self.stream.read(1)
            if not code:
                raise CheckpointError("truncated or corrupt checkpoint: pickle ends without STOP")
            op = _OPCODES.get(code)
            if op is None:
                raise CheckpointError(f"truncated or corrupt checkpoint: unknown pickle opcode {code.hex()}")
            arg = self._argument(op)
            if op.name == "STOP":
                return
            self._apply(op, arg)

    # ----------------------------------------------------------------------------------------------
    def _argument(self, op: pickletools.OpcodeInfo) -> object:
        """Read (or skip, for bytes and strings) the opcode's argument; only small ones are kept."""
        if op.arg is None:
            return None
        name = op.arg.name
        if name in ("stringnl_noescape_pair",):
            return (self._line(), self._line())
        if op.arg.n == pickletools.UP_TO_NEWLINE:
            return self._line()
        if op.arg.n >= 0:
            raw = self._read(op.arg.n)
            return _decode_fixed(name, raw)
        width = {pickletools.TAKEN_FROM_ARGUMENT1: 1, pickletools.TAKEN_FROM_ARGUMENT4: 4,
                 pickletools.TAKEN_FROM_ARGUMENT4U: 4, pickletools.TAKEN_FROM_ARGUMENT8U: 8}[op.arg.n]
        fmt = {1: "<B", 4: "<i" if op.arg.n == pickletools.TAKEN_FROM_ARGUMENT4 else "<I", 8: "<Q"}[width]
        (size,) = struct.unpack(fmt, self._read(width))
        if size < 0 or size > self.end - self.stream.tell():
            raise CheckpointError(f"truncated or corrupt checkpoint: a pickle value claims {size} bytes, "
                                  f"{self.end - self.stream.tell()} are left")
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8") and size <= 256:
            return self._read(size).decode("utf-8", "replace")  # may name a global (STACK_GLOBAL)
        self.stream.seek(size, io.SEEK_CUR)
        return None

    def _read(self, n: int) -> bytes:
        data = self.stream.read(n)
        if len(data) != n:
            raise CheckpointError("truncated or corrupt checkpoint: pickle ends inside an opcode")
        return data

    def _line(self) -> str:
        line = self.stream.readline(4096)
        if not line.endswith(b"\n"):
            raise CheckpointError("truncated or corrupt checkpoint: a pickle text argument is too long")
        return line[:-1].decode("latin-1")

    # ----------------------------------------------------------------------------------------------
    def _apply(self, op: pickletools.OpcodeInfo, arg: object) -> None:
        name = op.name
        if name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            index = len(self.memo) if name == "MEMOIZE" else int(arg)  # type: ignore[call-overload]
            if index > 2 * len(self.memo) + MEMO_SLACK:
                raise CheckpointError(f"malformed checkpoint: pickle memo index {index} after "
                                      f"{len(self.memo)} entries")
            self.memo[index] = self._top()
            return
        if name in ("GET", "BINGET", "LONG_BINGET"):
            value = self.memo.get(int(arg))  # type: ignore[call-overload]
            if value is None:
                raise CheckpointError("truncated or corrupt checkpoint: pickle reads an unset memo entry")
            self.stack.append(value)
            return
        if name in ("FRAME", "PROTO"):
            return
        if name == "POP_MARK":
            self._pop_to_mark()
            return
        before = op.stack_before
        if pickletools.markobject in before:  # what follows the mark in stack_before is the slice
            sliced = self._pop_to_mark()
            before = before[: before.index(pickletools.markobject)]
        else:
            sliced = []
        consumed = [self._pop() for _ in before][::-1] + sliced
        self._push_results(op, arg, consumed)

    def _push_results(self, op: pickletools.OpcodeInfo, arg: object, consumed: list[_Value]) -> None:
        name = op.name
        if name == "BUILD":
            self._check_build(consumed[0])
        if name in _MUTATORS:
            # Updated in place: a memoized reference to the container sees its new depth too.
            result = consumed[0]
            result.depth = max([result.depth] + [v.depth + 1 for v in consumed[1:]])
        elif name in ("GLOBAL", "STACK_GLOBAL", "INST"):
            module, qualname = arg if name != "STACK_GLOBAL" else (consumed[0].text, consumed[1].text)
            result = _Value(0, global_name=f"{module}.{qualname}")
            if name == "INST":  # INST finds the class and calls it in one opcode
                depth = 1 + max((v.depth for v in consumed), default=0)
                result = _Value(depth, instance_of=result.global_name)
        else:
            depth = 1 + max((v.depth for v in consumed), default=-1)
            callee = consumed[0].global_name if consumed and name in _CALLS else None
            result = _Value(depth, instance_of=callee, text=arg if isinstance(arg, str) else None)
        if result.depth > MAX_DEPTH:
            raise CheckpointError(f"malformed checkpoint: pickle nests deeper than {MAX_DEPTH} levels")
        for item in op.stack_after:
            self.stack.append(_MARK if item is pickletools.markobject else result)

    def _check_build(self, target: _Value) -> None:
        if target.global_name is not None:
            raise UnsafeCheckpoint(f"checkpoint tries to change {excerpt(target.global_name, 80)} (BUILD on a global); "
                                   "nothing from the file was executed",
                                   "the file is malicious or not a GHN checkpoint")
        if target.instance_of not in self.buildable:
            what = f"an instance of {excerpt(target.instance_of, 80)}" if target.instance_of else "a plain value"
            raise UnsafeCheckpoint(f"checkpoint tries to set attributes on {what}; nothing from the file "
                                   "was executed", "the file is malicious or not a GHN checkpoint")

    def _top(self) -> _Value:
        top = self.stack[-1] if self.stack else _MARK
        if not isinstance(top, _Value):
            raise CheckpointError("truncated or corrupt checkpoint: pickle memoizes an empty stack")
        return top

    def _pop(self) -> _Value:
        value = self.stack.pop() if self.stack else _MARK
        if not isinstance(value, _Value):
            raise CheckpointError("truncated or corrupt checkpoint: pickle stack underflow")
        return value

    def _pop_to_mark(self) -> list[_Value]:
        items: list[_Value] = []
        while self.stack:
            value = self.stack.pop()
            if not isinstance(value, _Value):
                return items[::-1]
            items.append(value)
        raise CheckpointError("truncated or corrupt checkpoint: pickle mark missing")


def _decode_fixed(name: str, raw: bytes) -> object:
    if name in ("uint1", "uint2", "uint4", "uint8"):
        return int.from_bytes(raw, "little")
    return None
