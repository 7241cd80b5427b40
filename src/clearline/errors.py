"""Every error clearline raises, in one hierarchy.

::

    ClearlineError
    ├── ProtocolError                 something on the hotline went wrong
    │   ├── LocalProtocolError        our own code misused a Session (a bug here)
    │   └── RemoteProtocolError       the peer (or the network) sent something bad
    │       ├── FrameError            length prefix wrong or frame over the maximum
    │       ├── MessageError          not a well-formed COSE_Sign1 / payload
    │       └── SignatureError        signature does not verify, or key unknown
    │           └── UnknownKeyError   the kid names no pinned key
    ├── ProofError (also ValueError)  a Merkle inclusion or consistency proof is bad
    ├── NoteError (also ValueError)   a signed note, checkpoint or cosignature is bad
    ├── WitnessRefusalError           a witness refuses a checkpoint (with the HTTP status)
    ├── LogIntegrityError             a stored log fails verification
    ├── LogStoreError                 the log store cannot be opened or written
    ├── InputFileError (also ValueError)  a YAML/TOML input file is invalid
    │   ├── PolicyError               a gate policy file is invalid
    │   └── ScenarioError             a simulation scenario file is invalid
    ├── StudyError (also ValueError)  a sensitivity study cannot run as asked
    ├── KeyMaterialError              keys missing, unreadable or mismatched
    ├── NodeStartError                a node process started from outside did not serve
    └── TakServerError                a TAK server for the tests or the demo could not be
        │                             installed or started
        └── TakConnectionError        a TAK server could not be reached, or closed a
                                      client's connection

Remote errors are normally turned into `Rejected` or `Closed` events by the
Session (one conversion point, as in h11); they are raised only by the codec
functions that a caller uses directly.
"""

from __future__ import annotations


class ClearlineError(Exception):
    """Base of every error clearline raises on purpose."""


class ProtocolError(ClearlineError):
    """A hotline protocol problem."""


class LocalProtocolError(ProtocolError):
    """Our side asked a Session to do something the protocol forbids."""


class RemoteProtocolError(ProtocolError):
    """The peer, or the network between us, produced bytes we must refuse."""


class FrameError(RemoteProtocolError):
    """The length-prefixed framing is broken or a frame exceeds the maximum."""


class MessageError(RemoteProtocolError):
    """A frame is not a well-formed signed message (COSE or payload level).

    `field` names the offending field path (e.g. ``body.track.pos``) when known.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class SignatureError(RemoteProtocolError):
    """A signature does not verify, or it names a key we do not know."""


class UnknownKeyError(SignatureError):
    """A message names a key id that is not pinned."""


class ProofError(ClearlineError, ValueError):
    """A Merkle proof failed to verify or was malformed."""


class NoteError(ClearlineError, ValueError):
    """A signed note, checkpoint or cosignature that is malformed or does not verify."""


class WitnessRefusalError(ClearlineError):
    """A witness refuses an add-checkpoint request: `status` is the HTTP status the
    tlog-witness specification names for the reason; `known_size`, with a 409, is the size
    of the latest checkpoint the witness cosigned for that log."""

    def __init__(self, status: int, message: str, known_size: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.known_size = known_size
        self.fork = False
        """The refused checkpoint has another root for a size the witness cosigned."""


class LogIntegrityError(ClearlineError):
    """A stored log does not verify. `index` is the first bad entry, if any."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(f"entry {index}: {message}" if index is not None else message)
        self.index = index


class LogStoreError(ClearlineError):
    """The log store could not be opened, read or written."""


class InputFileError(ClearlineError, ValueError):
    """An input file is invalid. Carries the source, line and what was expected."""

    def __init__(self, message: str, source: str = "<input>", line: int | None = None) -> None:
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")
        self.source = source
        self.line = line
        self.detail = message


class PolicyError(InputFileError):
    """A gate policy is invalid."""


class ScenarioError(InputFileError):
    """A simulation scenario is invalid."""


class StudyError(ClearlineError, ValueError):
    """A sensitivity study that cannot run as asked: a bad parameter or range, or a results
    folder that holds another study."""


class KeyMaterialError(ClearlineError):
    """Signing or TLS key material is missing, unreadable or does not match."""


class NodeStartError(ClearlineError):
    """A node process (demo, benchmarks, tests) exited or did not serve in time, or its link
    did not come up; the message holds what the node said."""


class TakServerError(ClearlineError):
    """A TAK server (clearline.lab.takserver) could not be installed or did not start."""


class TakConnectionError(TakServerError):
    """A TAK server could not be reached by one of clearline's own clients (the demo's, the
    map's: clearline.tak.client), or closed its connection."""
