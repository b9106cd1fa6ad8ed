"""Test-support code shared by every test package (private Redis servers, clusters, emulators)."""
