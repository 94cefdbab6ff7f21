# Man pages (verso.1, verso-CMD.1) and the bash completion, generated after
# the command is built from its --help texts (scripts/gen_man.sh), and
# installed under <mandir>/man1 and <datadir>/bash-completion/completions.
set(VERSO_GEN_DIR ${CMAKE_BINARY_DIR}/share)
add_custom_command(OUTPUT ${VERSO_GEN_DIR}/man/man1/verso.1
  ${VERSO_GEN_DIR}/bash-completion/completions/verso
  COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=0
    sh ${CMAKE_SOURCE_DIR}/scripts/gen_man.sh $<TARGET_FILE:verso_cli> ${VERSO_GEN_DIR}
  DEPENDS verso_cli ${CMAKE_SOURCE_DIR}/scripts/gen_man.sh
  COMMENT "Generating the man pages and bash completion from verso --help"
  VERBATIM)
add_custom_target(verso_manpages ALL DEPENDS ${VERSO_GEN_DIR}/man/man1/verso.1)
install(DIRECTORY ${VERSO_GEN_DIR}/man/man1 DESTINATION ${CMAKE_INSTALL_MANDIR})
install(FILES ${VERSO_GEN_DIR}/bash-completion/completions/verso
  DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
