# For the C API's tests: a short LeNet run in DIR/run and a bundle of it, DIR/lenet.tar.gz
# (network.yaml, weights.safetensors, labels.txt, as bundles hold them).
file(REMOVE_RECURSE ${DIR})
file(MAKE_DIRECTORY ${DIR}/bundle)
execute_process(COMMAND ${MYELIN} train --model lenet --data fashion-mnist --iterations 120 --batch 64
                        --train-limit 6000 --test-limit 1000 --threads 2 --quiet --out ${DIR}/run
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "myelin train failed: ${rc}")
endif()
file(COPY_FILE ${SOURCE}/models/lenet.yaml ${DIR}/bundle/network.yaml)
file(COPY_FILE ${DIR}/run/weights.safetensors ${DIR}/bundle/weights.safetensors)
file(WRITE ${DIR}/bundle/labels.txt
     "T-shirt/top\nTrouser\nPullover\nDress\nCoat\nSandal\nShirt\nSneaker\nBag\nAnkle boot\n")
execute_process(COMMAND ${CMAKE_COMMAND} -E tar czf ${DIR}/lenet.tar.gz network.yaml
                        weights.safetensors labels.txt
                WORKING_DIRECTORY ${DIR}/bundle RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cannot write the bundle: ${rc}")
endif()
# An ONNX model PyTorch exports, DIR/onnx/lenet.onnx with its input and logits, where Debian's
# python3 has torch and onnx; capi_test checks it when it is there and says so when not.
find_program(_python python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(_python)
  execute_process(COMMAND ${_python} ${SOURCE}/tests/onnx/torch_models.py ${DIR}/onnx
                  OUTPUT_QUIET ERROR_QUIET)
endif()
