# The chaos suite in `make test` (included from tests/CMakeLists.txt):
# - chaos.checker: the history checker's unit tests (crafted histories with a
#   lost ack, a duplicate, a gap, a stale strong read, ... must fail it) and
#   the schedule's determinism;
# - chaos.short: a short seeded chaos run, 3 nodes, about 2 minutes, on the
#   binaries of this build, with every fault. As root it runs the nodes in
#   network namespaces (nftables partitions, tmpfs data dirs for disk-full);
#   without root chaos/run falls back to 127.0.0.1 and the faults that need
#   no privileges, and says so. Timing (the longest stretch without an
#   acknowledgement per fault window, limit 2 s) is a warning here, never a
#   failure: a loaded CI machine must not turn the suite red for it; `make
#   chaos` (plain build) fails on it.
add_test(NAME chaos.checker
         COMMAND ${Python3_EXECUTABLE} -m unittest -v test_checker
         WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/chaos)
set_tests_properties(chaos.checker PROPERTIES TIMEOUT 120)

add_test(NAME chaos.short
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/chaos/run
                 --nodes 3 --duration 80 --seed 20261128 --faults all
                 --gap-warn-only
                 --report ${CMAKE_BINARY_DIR}/chaos-report
         WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
if(TARGET lossyfs)
  set(CHAOS_LOSSYFS "LOSSYFS=$<TARGET_FILE:lossyfs>;")
endif()
set_tests_properties(chaos.short PROPERTIES TIMEOUT 600
  ENVIRONMENT "${CHAOS_LOSSYFS}LEDGERD=$<TARGET_FILE:ledgerd>;LEDGERCTL=$<TARGET_FILE:ledgerctl>;ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:allocator_may_return_null=1;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")

# - chaos.roles: automatic roles (--roles: voters 3, standbys 1, dead
#   after 5 s), 5 nodes, 40 s of the faults that take members away (kill,
#   pause, partition, membership; chaos.short has the others), about 60 s
#   on the sanitizer build: the targets are set before the faults and must
#   be met again after healing; the checker's rules are those of every run.
add_test(NAME chaos.roles
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/chaos/run
                 --nodes 5 --duration 40 --seed 20261267
                 --faults kill,pause,partition,membership
                 --roles 3,1,5 --gap-warn-only
                 --report ${CMAKE_BINARY_DIR}/chaos-report-roles
         WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
set_tests_properties(chaos.roles PROPERTIES TIMEOUT 600
  ENVIRONMENT "${CHAOS_LOSSYFS}LEDGERD=$<TARGET_FILE:ledgerd>;LEDGERCTL=$<TARGET_FILE:ledgerctl>;ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:allocator_may_return_null=1;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
