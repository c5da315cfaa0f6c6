# Points OpenVINO_DIR at the CMake config that the `openvino` PyPI wheel ships
# (site-packages/openvino/cmake), found through the active Python (a virtualenv first),
# unless OpenVINO_DIR is already set or find_package(OpenVINO) works on its own.
if(NOT OpenVINO_DIR AND NOT DEFINED ENV{OpenVINO_DIR})
  find_package(OpenVINO QUIET COMPONENTS Runtime)
  if(NOT OpenVINO_FOUND)
    find_package(Python3 QUIET COMPONENTS Interpreter)
    if(Python3_Interpreter_FOUND)
      execute_process(
        COMMAND "${Python3_EXECUTABLE}" -c
                "import os, openvino; print(os.path.join(os.path.dirname(openvino.__file__), 'cmake'))"
        OUTPUT_VARIABLE _centernet_ov_dir
        OUTPUT_STRIP_TRAILING_WHITESPACE
        RESULT_VARIABLE _centernet_ov_result
        ERROR_QUIET)
      if(_centernet_ov_result EQUAL 0 AND EXISTS "${_centernet_ov_dir}/OpenVINOConfig.cmake")
        set(OpenVINO_DIR "${_centernet_ov_dir}" CACHE PATH "OpenVINO CMake config (from the Python wheel)" FORCE)
        message(STATUS "OpenVINO from the Python wheel of ${Python3_EXECUTABLE}: ${OpenVINO_DIR}")
      endif()
    endif()
  endif()
endif()
