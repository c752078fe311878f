"""The locker agent: runs on the locker computer, drives the board, keeps a journal."""
