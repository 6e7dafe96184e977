"""The check runner both deployment checks share: one `ok:` or `FAIL:` line per check, then a
final `N passed, N failed`."""

from __future__ import annotations

passed = 0
failed = 0


def check(name: str, fn) -> None:
    """Run one check; an AssertionError (or any exception) counts as a failure."""
    global passed, failed
    try:
        detail = fn()
    except Exception as e:  # noqa: BLE001 - every problem is a failed check
        failed += 1
        print(f"FAIL: {name}: {type(e).__name__}: {e}")
        return
    passed += 1
    print(f"ok: {name}" + (f" ({detail})" if detail else ""))


def summary(extra_failures: int = 0) -> int:
    """Print the totals; the exit status (1 on any failure)."""
    print(f"{passed} passed, {failed + extra_failures} failed")
    return 1 if failed + extra_failures else 0
