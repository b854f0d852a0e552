import sys

from mnist_cnn.cli import main

sys.exit(main())
