# -DMYELIN_MINIMAL=ON: an inference-only libmyelin. The CPU engine (core, ops, cpu), network files
# (model) and the inference subset of data/ and train/: images decoded and resized, bundles
# unpacked, weights read, networks run (train/predictor.h). No CUDA, distributed training, server,
# ONNX, Python module, CLI, datasets or loaders; of the tests, the C API's programs only (the full
# build's ctest capi_minimal builds this variant and runs them). Included by CMakeLists.txt after
# the engine's layers, which it ends.
message(STATUS "MYELIN_MINIMAL: inference-only libmyelin (CPU engine, C API)")

# A layer of the files named (each DIR/NAME.cpp), for layers whose inference subset is a few files.
function(myelin_layer_files name dir)
  list(TRANSFORM ARGN PREPEND ${PROJECT_SOURCE_DIR}/${dir}/)
  list(TRANSFORM ARGN APPEND .cpp)
  add_library(${name} OBJECT ${ARGN})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(${name} PRIVATE ${MYELIN_WARNINGS})
endfunction()

# archive: bundles (.tar.gz, through libarchive); image_codec, resize, batch_transform: images as
# the network reads them (myelin_classify_image); io: files.
myelin_layer_files(myelin_data src/data archive batch_transform image_codec io resize)
target_link_libraries(myelin_data PUBLIC ZLIB::ZLIB PNG::PNG JPEG::JPEG Threads::Threads
                      nlohmann_json::nlohmann_json LibArchive::LibArchive)
myelin_layer_files(myelin_train src/train checkpoint checkpoint_session inference predictor session)
target_link_libraries(myelin_train PUBLIC nlohmann_json::nlohmann_json)

set(MYELIN_LAYERS myelin_core myelin_ops myelin_cpu myelin_model myelin_data myelin_train)
include(cmake/myelin_c.cmake)  # links with --no-undefined: a file missing above fails the link
