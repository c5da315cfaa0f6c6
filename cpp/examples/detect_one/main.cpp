// detect_one MODEL IMAGE: the boxes of one image, one line each, through the library.
#include <iostream>

#include "centernet/detector.hpp"
#include "centernet/openvino_engine.hpp"

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: detect_one MODEL IMAGE\n";
        return 2;
    }
    try {
        centernet::OpenVinoEngine engine(argv[1]);
        centernet::DetectorSettings settings;
        settings.postprocess.threshold = 0.3;
        centernet::Detector detector(engine, settings);
        const auto& names = detector.spec().class_names;
        int status = 0;
        detector.run({argv[2]}, [&](centernet::DetectionResult& result) {
            if (!result.ok()) {
                std::cerr << result.source << ": " << result.error << "\n";
                status = 1;
                return;
            }
            for (const auto& d : result.detections) {
                std::cout << names[d.class_id] << " " << d.score << " " << d.xyxy[0] << " "
                          << d.xyxy[1] << " " << d.xyxy[2] << " " << d.xyxy[3] << "\n";
            }
        });
        return status;
    } catch (const std::exception& exc) {
        std::cerr << "error: " << exc.what() << "\n";
        return 2;
    }
}
