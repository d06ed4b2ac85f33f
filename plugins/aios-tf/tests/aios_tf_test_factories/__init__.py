"""Model factories the tests name as architecture package.module:function."""
