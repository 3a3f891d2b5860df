# examples/classify.c on the test bundle and on the run directory must name the same top class
# for an image as `myelin classify`.
execute_process(COMMAND ${MYELIN} classify --weights ${DIR}/run --top 1 --json ${IMAGE}
                OUTPUT_VARIABLE cli RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "myelin classify failed: ${cli}")
endif()
string(JSON want GET "${cli}" 0 top 0 label)
foreach(model ${DIR}/lenet.tar.gz ${DIR}/run)
  execute_process(COMMAND ${EXAMPLE} ${model} ${IMAGE} OUTPUT_VARIABLE out RESULT_VARIABLE rc)
  message("${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "the example failed on ${model}: ${rc}")
  endif()
  if(NOT out MATCHES "^[^\n]*\n[^\n]*\\(${want}\\)\n")  # the first prediction
    message(FATAL_ERROR "myelin classify's top class is ${want}; the example printed:\n${out}")
  endif()
endforeach()
