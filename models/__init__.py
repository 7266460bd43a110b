"""Net and solver generators written with the NetSpec DSL.

    models.caffenet   CaffeNet and the Flickr-style fine-tuning nets and solver (examples/02-fine-tuning.ipynb)
    models.lenet      LeNet for MNIST (examples/01-learning-lenet.ipynb)
    models.cifar10    CIFAR-10 "quick" net (examples/cifar10/cifar10_quick_train_test.prototxt) and solver

Each generator returns a NetParameter/SolverParameter whose prototxt (netspec.spec.to_prototxt) equals what
real pycaffe prints for the same definition; pass `path=` to write it (atomically) instead.
"""
