import sys

from hrm_doctor.cli import main

sys.exit(main())
