//! End-to-end tests: they start the real `faultline` binary and talk to it as users do.
