/*
 * Declarations of the Arm Ethos-U core driver API that the qanas NPU bundle calls, for
 * compile checks only (tests/compiler/npu/test_npu_bundle.py). They mirror the documented
 * prototypes of ethos-u-core-driver's include/ethosu_driver.h; the real header (and the driver)
 * come from the user's board SDK. `struct ethosu_driver` is complete there; its members are
 * the driver's business, so this header gives it placeholder storage.
 */
#ifndef QANAS_TEST_ETHOSU_DRIVER_H_
#define QANAS_TEST_ETHOSU_DRIVER_H_

#include <stddef.h>
#include <stdint.h>

struct ethosu_driver {
    uint8_t opaque[64];
};

int ethosu_init(struct ethosu_driver *drv,
                void *const base_address,
                const void *fast_memory,
                const size_t fast_memory_size,
                uint32_t secure_enable,
                uint32_t privilege_enable);

void ethosu_irq_handler(struct ethosu_driver *drv);

#endif /* QANAS_TEST_ETHOSU_DRIVER_H_ */
