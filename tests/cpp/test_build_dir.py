"""The C++ build folder: a configure that failed is redone, and says what is missing."""

from __future__ import annotations

from tests.cpp.conftest import configured, missing_package


def test_a_cache_without_a_build_system_is_not_a_finished_configure(tmp_path):
    assert not configured(tmp_path)
    (tmp_path / "CMakeCache.txt").write_text("# what a failed configure leaves\n")
    assert not configured(tmp_path)  # the old check stopped here and never reconfigured
    (tmp_path / "Makefile").write_text("all:\n")
    assert configured(tmp_path)


def test_the_missing_library_is_named_from_cmakes_output():
    output = (
        "-- Found Threads: TRUE\nCMake Error at cmake/FindDependencies.cmake:36 (message):\n"
        "  nlohmann/json.hpp not found: apt-get install nlohmann-json3-dev\n"
        "-- Configuring incomplete, errors occurred!\n"
    )
    expected = "nlohmann/json.hpp not found: apt-get install nlohmann-json3-dev"
    assert missing_package(output) == expected
    assert missing_package("CMake Error: something else\n") is None
