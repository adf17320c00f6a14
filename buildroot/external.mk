include $(sort $(wildcard $(BR2_EXTERNAL_FGW_PATH)/package/*/*.mk))
