import sys

from catneuron.cli import main

sys.exit(main())
