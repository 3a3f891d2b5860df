# The inference-only libmyelin (-DMYELIN_MINIMAL=ON): configured in BUILD and built, then checked
# to depend on none of the full build's extras (CUDA, MPI, ONNX, the server's libraries), then its
# C API test on DIR (tests/capi_setup.cmake's model) and examples/classify.c on the bundle and the
# run, which must name `myelin classify`'s top class (tests/capi_example.cmake).
set(_configure ${CMAKE_COMMAND} -S ${SOURCE} -B ${BUILD} -DMYELIN_MINIMAL=ON
    -DCMAKE_BUILD_TYPE=Release)
if(GENERATOR)
  list(APPEND _configure -G ${GENERATOR})
endif()
if(LAUNCHER)
  list(APPEND _configure -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
endif()
foreach(step "${_configure}" "${CMAKE_COMMAND};--build;${BUILD};--parallel;2")
  execute_process(COMMAND ${step} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${step} failed:\n${out}")
  endif()
endforeach()

file(GLOB _lib ${BUILD}/libmyelin.so.*.*.*)
file(SIZE ${_lib} _size)
execute_process(COMMAND ldd ${_lib} OUTPUT_VARIABLE _ldd)
message("minimal ${_lib}: ${_size} bytes, needs:\n${_ldd}")
foreach(extra cuda cudart cudnn cublas nccl mpi protobuf onnx sqlite3 sodium cpp-httplib python)
  if(_ldd MATCHES "[\t/]lib${extra}[.-]")
    message(FATAL_ERROR "the minimal libmyelin links ${extra}:\n${_ldd}")
  endif()
endforeach()

execute_process(COMMAND ${BUILD}/capi_test ${DIR} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE out)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "capi_test failed on the minimal libmyelin: ${rc}")
endif()
set(EXAMPLE ${BUILD}/myelin_classify_example)
include(${CMAKE_CURRENT_LIST_DIR}/capi_example.cmake)
