"""kvstore.errors: libkvc's error codes, strerror() and KvError.

The KVC_E* codes are enum kvc_error of client/kvc.h
(client/python/tests/test_errors.py checks that they agree).
"""
import os

from ._lib import load_library

# enum kvc_error: positive, as in C; a KvError's code is their negative.
KVC_EPROTO = 20001
KVC_EVERSION = 20002
KVC_EMSGSIZE = 20003
KVC_EBATCH = 20004
KVC_ECONNS = 20005
KVC_EPINS = 20006
KVC_EUNCOMMITTED = 20007
KVC_EFULL = 20008
KVC_ENOGPU = 20009
KVC_EGPU = 20010
KVC_ENONS = 20011
KVC_ETOOBIG = 20012
KVC_EPEER = 20013
KVC_ECLOSED = 20014
KVC_ENSLIMIT = 20015
KVC_ENOTIER = 20016
KVC_ECORRUPT = 20017
KVC_ENOPARENT = 20018
KVC_EFORMAT = 20019
KVC_ETIMEDOUT = 20020
KVC_ELOCKED = 20021
KVC_ENSREC = 20022
KVC_EQUOTA = 20023
KVC_EMETA = 20024
KVC_EEXPIRED = 20025
KVC_EMEMORY = 20026
KVC_EREFUSED = 20027

__all__ = ["KvError", "strerror"] + [n for n in list(globals()) if n.startswith("KVC_E")]


def strerror(code):
    """kvc_strerror(code): the name of an error code (negative or positive)."""
    try:
        s = load_library().kvc_strerror(int(code))
    except OSError:
        s = None
    if s:
        return s.decode("utf-8", "replace")
    return os.strerror(abs(int(code)))


class KvError(Exception):
    """A failure reported by libkvc.

    code: the negative code the C library returned (-errno or -KVC_E*);
    message: kvc_strerror(code); call: the C function that failed.
    """

    def __init__(self, code, call=None, detail=None):
        code = -abs(int(code))
        self.code = code
        self.message = strerror(code)
        self.call = call
        self.detail = detail
        super().__init__(code, self.message)

    @property
    def errno(self):
        """The positive code (an errno value below 20000)."""
        return -self.code

    def __str__(self):
        s = "%s (%d)" % (self.message, self.code)
        if self.call:
            s = "%s: %s" % (self.call, s)
        if self.detail:
            s = "%s: %s" % (s, self.detail)
        return s

    def __reduce__(self):
        return (KvError, (self.code, self.call, self.detail))


def _check(rc, call):
    if rc < 0:
        raise KvError(rc, call)
    return rc
