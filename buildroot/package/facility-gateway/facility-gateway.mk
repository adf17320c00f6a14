################################################################################
#
# facility-gateway
#
################################################################################

# Built from the repository this external tree lives in (the release build checks out the
# signed tag first; docs/image.md).
FACILITY_GATEWAY_VERSION = $(shell cd $(BR2_EXTERNAL_FGW_PATH)/.. && git describe --tags --always --dirty 2>/dev/null || echo local)
FACILITY_GATEWAY_SITE = $(BR2_EXTERNAL_FGW_PATH)/..
FACILITY_GATEWAY_SITE_METHOD = local
FACILITY_GATEWAY_LICENSE = Apache-2.0
FACILITY_GATEWAY_LICENSE_FILES = LICENSE
FACILITY_GATEWAY_DEPENDENCIES = tesseract-ocr leptonica tpm2-tss host-clang

# The gateway binary only: the hub and the synthetic department system are not in the box.
FACILITY_GATEWAY_CARGO_BUILD_OPTS = -p fgw-gateway --bin gateway --locked
FACILITY_GATEWAY_CARGO_ENV = \
	PKG_CONFIG_ALLOW_CROSS=1 \
	LIBCLANG_PATH=$(HOST_DIR)/lib \
	BINDGEN_EXTRA_CLANG_ARGS="--sysroot=$(STAGING_DIR)"

define FACILITY_GATEWAY_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/target/$(RUSTC_TARGET_NAME)/release/gateway \
		$(TARGET_DIR)/usr/bin/gateway
	$(INSTALL) -D -m 0644 $(@D)/README.md \
		$(TARGET_DIR)/usr/share/doc/facility-gateway/README.md
endef

define FACILITY_GATEWAY_USERS
	fgw -1 fgw -1 * /data/facility-gateway - tss Facility gateway daemon
endef

define FACILITY_GATEWAY_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(BR2_EXTERNAL_FGW_PATH)/../board/common/rootfs-overlay/usr/lib/systemd/system/facility-gateway.service \
		$(TARGET_DIR)/usr/lib/systemd/system/facility-gateway.service
endef

$(eval $(cargo-package))
