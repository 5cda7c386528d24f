"""Code the tests share: tiny trained runs, oracle components, native dataset layouts, infer.py runs."""
