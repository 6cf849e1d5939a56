# Shared build plumbing: proto generation, project warnings, test executables.

set(MICRO_GEN_DIR ${CMAKE_BINARY_DIR}/gen)
file(MAKE_DIRECTORY ${MICRO_GEN_DIR})

# micro_proto_library(<target> <proto paths relative to PROTO_ROOT> [PROTO_ROOT dir])
# Generates C++ messages and gRPC stubs into build/gen and compiles them into a static library
# that carries no project warning flags (generated code is not ours to fix).
function(micro_proto_library target)
  cmake_parse_arguments(ARG "" "PROTO_ROOT" "" ${ARGN})
  if(NOT ARG_PROTO_ROOT)
    set(ARG_PROTO_ROOT ${PROJECT_SOURCE_DIR}/proto)
  endif()
  set(srcs)
  foreach(proto ${ARG_UNPARSED_ARGUMENTS})
    string(REGEX REPLACE "\\.proto$" "" stem ${proto})
    set(outs ${MICRO_GEN_DIR}/${stem}.pb.cc ${MICRO_GEN_DIR}/${stem}.pb.h
             ${MICRO_GEN_DIR}/${stem}.grpc.pb.cc ${MICRO_GEN_DIR}/${stem}.grpc.pb.h)
    add_custom_command(
      OUTPUT ${outs}
      COMMAND $<TARGET_FILE:protobuf::protoc>
              --proto_path=${ARG_PROTO_ROOT}
              --cpp_out=${MICRO_GEN_DIR}
              --grpc_out=${MICRO_GEN_DIR}
              --plugin=protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin>
              ${ARG_PROTO_ROOT}/${proto}
      DEPENDS ${ARG_PROTO_ROOT}/${proto}
      COMMENT "protoc: ${proto}"
      VERBATIM)
    list(APPEND srcs ${outs})
  endforeach()
  add_library(${target} STATIC ${srcs})
  target_include_directories(${target} SYSTEM PUBLIC $<BUILD_INTERFACE:${MICRO_GEN_DIR}>)
  target_link_libraries(${target} PUBLIC protobuf::libprotobuf gRPC::grpc++)
endfunction()

# Warnings for code we write.
function(micro_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
endfunction()

# micro_library(<target> SOURCES ... DEPS ...)
function(micro_library target)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${target} STATIC ${ARG_SOURCES})
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${target} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  micro_warnings(${target})
endfunction()

# micro_test(<target> SOURCES ... DEPS ... [TIMEOUT seconds]): one Catch2 executable, each
# TEST_CASE a CTest test with a timeout of 120 s unless TIMEOUT says otherwise.
function(micro_test target)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  add_executable(${target} ${ARG_SOURCES} $<TARGET_OBJECTS:micro_catch_main>)
  target_link_libraries(${target} PRIVATE Catch2::Catch2 micro_test_support ${ARG_DEPS})
  micro_warnings(${target})
  catch_discover_tests(${target} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT})
endfunction()
