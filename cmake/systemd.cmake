# systemd units (share/verso/systemd/*.service.in), installed under
# <datadir>/verso/systemd with ExecStart pointing at the installed verso.
# Written at install time, so `cmake --install --prefix P` gets P's path.
file(GLOB VERSO_UNITS ${CMAKE_SOURCE_DIR}/share/verso/systemd/*.service.in)
foreach(unit_in ${VERSO_UNITS})
  get_filename_component(unit ${unit_in} NAME)
  string(REGEX REPLACE "\\.in$" "" unit ${unit})
  install(CODE "
    if(IS_ABSOLUTE \"${CMAKE_INSTALL_BINDIR}\")
      set(VERSO_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
    else()
      set(VERSO_BINDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}\")
    endif()
    set(dst \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DATADIR}/verso/systemd/${unit}\")
    message(STATUS \"Installing: \${dst}\")
    configure_file(\"${unit_in}\" \"\${dst}\" @ONLY)
  ")
endforeach()
