import relay_ops


def test_package_has_docstring() -> None:
    assert relay_ops.__doc__ and "lockers" in relay_ops.__doc__
