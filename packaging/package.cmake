# The Debian package (CPack DEB): `cpack -G DEB` in a build folder, or
# scripts/package.sh. Installs the two programs, the systemd unit with its sysusers
# and tmpfiles snippets, /etc/linewire/linewire.yaml as a conffile, and the docs.
# Depends comes from dpkg-shlibdeps (CPACK_DEBIAN_PACKAGE_SHLIBDEPS), so it names the
# exact Debian library packages the binaries link.

install(FILES systemd/linewired.service DESTINATION lib/systemd/system)
install(FILES systemd/linewire.sysusers DESTINATION lib/sysusers.d RENAME linewire.conf)
install(FILES systemd/linewire.tmpfiles DESTINATION lib/tmpfiles.d RENAME linewire.conf)
install(FILES packaging/linewire.yaml DESTINATION /etc/linewire)
install(FILES README.md DESTINATION share/doc/linewire)
install(FILES config/linewire.yaml DESTINATION share/doc/linewire
  RENAME linewire.yaml.reference)
install(DIRECTORY examples/ DESTINATION share/doc/linewire/examples USE_SOURCE_PERMISSIONS
  PATTERN ".quickstart.yaml" EXCLUDE)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME linewire)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "linewire maintainers <linewire@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "run programs line by line over MQTT (agent linewired and client linewire)")
set(CPACK_PACKAGE_DESCRIPTION
  "linewired puts programs that read stdin and write stdout on an MQTT broker, as websocketd does for WebSockets; linewire is its client.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "mosquitto, mosquitto-clients")
# Cross builds (cross/*.cmake) name the target's Debian architecture.
if(LINEWIRE_DEB_ARCH)
  set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE ${LINEWIRE_DEB_ARCH})
endif()
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${PROJECT_SOURCE_DIR}/packaging/conffiles
  ${PROJECT_SOURCE_DIR}/packaging/postinst
  ${PROJECT_SOURCE_DIR}/packaging/prerm
  ${PROJECT_SOURCE_DIR}/packaging/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
