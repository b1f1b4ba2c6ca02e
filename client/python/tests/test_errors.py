"""The binding's error codes against libkvc's: every KVC_E* of enum
kvc_error in client/kvc.h is a constant of the kvstore package with the
same value, and the package has no KVC_E* that kvc.h lacks. No daemon, no
GPU, no torch.

Run: PYTHONPATH=client/python python3 -m unittest client/python/tests/test_errors.py -v
"""
import os
import re
import unittest

import kvstore

KVC_H = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "kvc.h")


def c_error_codes(text):
    """{name: value} of enum kvc_error's members in kvc.h's text."""
    m = re.search(r"enum kvc_error\s*\{(.*?)\};", text, re.S)
    if not m:
        raise AssertionError("client/kvc.h has no enum kvc_error")
    body = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)
    codes = {}
    for name, value in re.findall(r"\b(KVC_E\w+)\s*=\s*(\w+)", body):
        codes[name] = int(value, 0)
    return codes


class ErrorCodesTest(unittest.TestCase):
    def test_python_codes_equal_libkvc(self):
        with open(KVC_H) as f:
            c = c_error_codes(f.read())
        py = {n: getattr(kvstore, n) for n in dir(kvstore) if n.startswith("KVC_E")}
        self.assertGreater(len(c), 20, "parsed too few codes from kvc.h")
        self.assertEqual(sorted(set(c) - set(py)), [], "in kvc.h, missing in Python")
        self.assertEqual(sorted(set(py) - set(c)), [], "in Python, missing in kvc.h")
        for name, value in sorted(c.items()):
            self.assertEqual(py[name], value, name)

    def test_parser_sees_a_difference(self):
        """The check fails when a value differs (the parser is not blind)."""
        with open(KVC_H) as f:
            text = f.read()
        c = c_error_codes(text.replace("KVC_EFULL\t= 20008", "KVC_EFULL\t= 20099"))
        self.assertEqual(c["KVC_EFULL"], 20099)
        self.assertNotEqual(c["KVC_EFULL"], kvstore.KVC_EFULL)


if __name__ == "__main__":
    unittest.main()
