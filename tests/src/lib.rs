//! Cross-binary end-to-end tests of DaemonEye live in `tests/`; this library is empty on
//! purpose. The tests start real binaries in temporary directories of their own.
