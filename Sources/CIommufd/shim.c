#include "CIommufd.h"
