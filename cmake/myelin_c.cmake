# libmyelin: the C API (include/myelin/myelin.h) as a shared library over the objects of
# MYELIN_LAYERS, exporting only the API; installed with a CMake package (myelin::myelin_c) and a
# pkg-config file. The full build and the minimal one (myelin_minimal.cmake) both include this.
set(MYELIN_C_VERSION 0.1.0)
enable_language(C)
# The server is no part of the C API: its objects (and SQLite, cpp-httplib, libsodium) stay out.
set(_capi_layers ${MYELIN_LAYERS})
list(REMOVE_ITEM _capi_layers myelin_server)
add_library(myelin_c SHARED ${PROJECT_SOURCE_DIR}/src/capi/capi.cpp)
target_link_libraries(myelin_c PRIVATE ${_capi_layers})
target_include_directories(myelin_c PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
                           $<INSTALL_INTERFACE:include> PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_compile_options(myelin_c PRIVATE ${MYELIN_WARNINGS})
target_compile_definitions(myelin_c PRIVATE MYELIN_C_VERSION="${MYELIN_C_VERSION}")
# The layers' objects go into a shared library: position-independent code. Only the API is
# exported.
set_property(TARGET ${MYELIN_LAYERS} PROPERTY POSITION_INDEPENDENT_CODE ON)
# Every symbol resolved at link time: an object missing from the layers above is a link error, not
# a failure when a program loads the library.
target_link_options(myelin_c PRIVATE -Wl,--version-script=${PROJECT_SOURCE_DIR}/cmake/myelin.map
                    -Wl,--no-undefined)
set_target_properties(myelin_c PROPERTIES OUTPUT_NAME myelin VERSION ${MYELIN_C_VERSION} SOVERSION 0
                      CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON
                      INSTALL_RPATH_USE_LINK_PATH ON)  # dependencies outside the linker path
add_executable(myelin_classify_example ${PROJECT_SOURCE_DIR}/examples/classify.c)
target_link_libraries(myelin_classify_example PRIVATE myelin_c)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
install(TARGETS myelin_c EXPORT myelinTargets LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/myelin/myelin.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/myelin)
install(EXPORT myelinTargets NAMESPACE myelin:: FILE myelinConfig.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/myelin)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/myelinConfigVersion.cmake
                                 VERSION ${MYELIN_C_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_BINARY_DIR}/myelinConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/myelin)
configure_file(${PROJECT_SOURCE_DIR}/cmake/myelin.pc.in ${CMAKE_BINARY_DIR}/myelin.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/myelin.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
if(MYELIN_TESTS)
  add_executable(capi_test ${PROJECT_SOURCE_DIR}/tests/capi_test.c)
  target_link_libraries(capi_test PRIVATE myelin_c Threads::Threads)
endif()
if(MYELIN_TESTS AND TARGET myelin)
  # A short LeNet run and a bundle of it, then the C API's tests and the example on them.
  set(_capi_dir ${CMAKE_BINARY_DIR}/capi-test)
  add_test(NAME capi_setup COMMAND ${CMAKE_COMMAND} -DMYELIN=$<TARGET_FILE:myelin> -DDIR=${_capi_dir}
           -DSOURCE=${PROJECT_SOURCE_DIR} -P ${PROJECT_SOURCE_DIR}/tests/capi_setup.cmake)
  set_tests_properties(capi_setup PROPERTIES FIXTURES_SETUP capi_model TIMEOUT 300)
  add_test(NAME capi_test COMMAND capi_test ${_capi_dir})
  add_test(NAME capi_example COMMAND ${CMAKE_COMMAND} -DMYELIN=$<TARGET_FILE:myelin>
           -DEXAMPLE=$<TARGET_FILE:myelin_classify_example> -DDIR=${_capi_dir}
           -DIMAGE=${PROJECT_SOURCE_DIR}/docs/screenshots/home.png
           -P ${PROJECT_SOURCE_DIR}/tests/capi_example.cmake)
  set_tests_properties(capi_test capi_example PROPERTIES FIXTURES_REQUIRED capi_model TIMEOUT 300)
  # The inference-only variant (-DMYELIN_MINIMAL=ON) configured and built beside this build, and
  # its C API test and example run on the same model (a few minutes where ccache is cold).
  add_test(NAME capi_minimal COMMAND ${CMAKE_COMMAND} -DSOURCE=${PROJECT_SOURCE_DIR}
           -DBUILD=${CMAKE_BINARY_DIR}/minimal -DDIR=${CMAKE_BINARY_DIR}/capi-test
           -DMYELIN=$<TARGET_FILE:myelin> -DIMAGE=${PROJECT_SOURCE_DIR}/docs/screenshots/home.png
           -DGENERATOR=${CMAKE_GENERATOR} -DLAUNCHER=${CMAKE_CXX_COMPILER_LAUNCHER}
           -P ${PROJECT_SOURCE_DIR}/tests/capi_minimal.cmake)
  set_tests_properties(capi_minimal PROPERTIES FIXTURES_REQUIRED capi_model TIMEOUT 1500)
endif()
