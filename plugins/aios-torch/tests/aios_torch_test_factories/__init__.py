"""User model factories for the tests (``architecture: aios_torch_test_factories.models:<name>``)."""
